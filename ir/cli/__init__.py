"""The command line: click commands only -- parse, call the library, print. Imports any room."""
