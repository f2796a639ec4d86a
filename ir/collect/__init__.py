"""Collectors: small modules, each with a name, an applicability check and a generator of
artifacts; and the runner that feeds them into a bundle. May import ir.runtime, ir.bundle, ir.records."""
