"""Dialects the proxy speaks besides its own JSON API: Graph drop-in, Google freeBusy, iCalendar."""
