// The pod sandbox ("pause") program of the test bed's node: no registry is reachable, so the
// sandbox image is built locally from this program (tests/testbed/images.py) and imported with ctr.
module ir.testbed/pause

go 1.25.0
