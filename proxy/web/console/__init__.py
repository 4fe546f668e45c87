"""Pages for people: the home page, the admin console, the week view, and their static files.

Every page is server-rendered HTML in one frame (frame.py) with one stylesheet; the console and
the week view add a small script of their own. All of it is package data served by the proxy
(assets.py): nothing is fetched from anywhere else, and the pages' CSP allows nothing else.
"""
