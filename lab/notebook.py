"""What every notebook's first cell calls: the config and the run folder.

Tests run the notebooks headless on a smaller world by setting `LAB_RUN_DIR` and
`LAB_SET` (a JSON object of overrides); a student changes the profile name and nothing else.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lab.config import LabConfig
from lab.profiles import load_config

REPO_ROOT = Path(__file__).resolve().parents[1]


def notebook_setup(profile: str = "tiny") -> tuple[LabConfig, Path]:
    """The profile's config (plus `LAB_SET` overrides) and its run folder (`runs/<profile>`)."""
    overrides = json.loads(os.environ.get("LAB_SET", "{}"))
    cfg = load_config(profile, overrides)
    run_dir = Path(os.environ.get("LAB_RUN_DIR", REPO_ROOT / "runs" / profile))
    return cfg, run_dir
