"""MkDocs hook: the CLI and YAML references, generated from the code at build time.

``reference/cli.md`` walks the argparse parser and ``reference/yaml.md`` reads the rule tables
(``nas.cli.reference``, ``nas.cli.reference_yaml``): a command, flag or key added to the code
appears in the next build, and nothing generated is committed.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File

# the checkout this site documents comes first (not another installed copy of nas)
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GENERATED = {
    "reference/cli.md": ("nas.cli.reference", "cli_reference"),
    "reference/yaml.md": ("nas.cli.reference_yaml", "yaml_reference"),
}


def on_files(files, config):
    import importlib

    for uri, (module, func) in GENERATED.items():
        text = getattr(importlib.import_module(module), func)()
        files.append(File.generated(config, uri, content=text))
    return files
