"""Text rendering of the replay views, one module per view beside the view it renders (summary,
processes, network, files, timeline and logs, diff), on the shared helpers of `text`.

Pure text: a renderer yields lines or writes rows to a stream it is given; it never prints to the
terminal, styles, or knows click (`ir.cli` echoes the lines and adds the verdict banners). Same
imports as the rest of ir.replay: store, bundle, records, clock, errors.
"""
