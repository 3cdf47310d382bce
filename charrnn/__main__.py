from charrnn.cli import entry

entry()
