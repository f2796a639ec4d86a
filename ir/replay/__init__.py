"""Replay: read-only views over a bundle (summary, ps, net, fs, logs, timeline, diff, exports,
HTML report), all streaming from the bundle file, and their text rendering (`render/`). Imports
bundle, store, records, clock, errors.
"""
