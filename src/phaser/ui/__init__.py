"""Browser assets served from the package (the UWS stylesheet)."""
