"""Entry point of the sandbox helper: ``python -I boot.py launcher ...`` (``sandbox_process.py``
starts it) or ``python -I boot.py probe``.

``-I`` keeps this folder off ``sys.path`` (the program must not be able to import the judge by
name), so the package is loaded from its files under the private name ``cipo_isolated``:
standard library only, nothing of the trainer."""

import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "cipo_isolated", os.path.join(_HERE, "__init__.py"), submodule_search_locations=[_HERE]
)
_package = importlib.util.module_from_spec(_spec)
sys.modules["cipo_isolated"] = _package
_spec.loader.exec_module(_package)

from cipo_isolated.launcher import main  # noqa: E402

main(sys.argv[1:])
