"""lift3d.engine"""
