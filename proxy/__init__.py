"""freebusy-proxy: free/busy from Microsoft Graph, minimized to status, start and end."""

__version__ = "0.1.0"
