"""lift3d.data"""
