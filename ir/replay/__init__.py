"""Replay: read-only views over a bundle (summary, ps, net, fs, logs, timeline, diff, exports,
HTML report), all streaming from the bundle file, their text rendering (`render/`), and each
`ir replay` view declared once, with its options and its page (`views/`). Imports bundle, store,
records, clock, errors.
"""
