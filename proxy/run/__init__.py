"""Running the proxy: the command line, serving, workers, and the demo."""
