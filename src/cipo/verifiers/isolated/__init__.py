"""The code that runs inside a code sample's sandbox (standard library only; see ``boot.py``).

``judge``: the trusted test runner (root at start, then ``confine``'s judge identity);
``program``: the server that runs the untrusted program in its own process for the judge;
``remote``: the judge's stand-ins for the program's functions and objects; ``wire``: frames and
the plain-value codec both sides use; ``confine``: mounts, cgroups, limits and identities;
``stdio_runner.py``: the source a stdin/stdout test's fresh interpreter runs.
"""
