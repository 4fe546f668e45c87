"""The pages and admin routes of delegated connections (the flows themselves: proxy.connect)."""
