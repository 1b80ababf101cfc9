"""lift3d.fields"""
