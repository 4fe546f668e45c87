"""The languages consumers speak: the native JSON API, Graph drop-in, Google freeBusy, iCalendar."""
