"""A campaign: the whole table (or the rows you list) x seeds, one step per Run all, safe across sessions.

spec.py     what a campaign is (rows in their order, seeds, base, overrides), fixed in campaign.json
state.py    each entry's state derived from its run folder, result JSON and claim; failures
claim.py    which session trains an entry: claim files, a settle delay, the lower (time, session) wins
hours.py    hours left per run: measured, estimated or projected (and labelled so)
report.py   the status table and the one line on what the next step does
session.py  one step: probe what waits, resume or start what fits the budget, redraw the figures
figure.py   the campaign figure
notebook.py the campaign notebook's session arguments (Drive folder, local disk, smoke mode)

The folder: campaign.json, runs/<entry>/ (run directories), results/<entry>/runs/*.json, claims/<entry>/,
failed/<entry>.json, figures/campaign.png and figures/table.png. docs/campaign.md has the whole story.
"""
from .figure import plot_campaign
from .report import format_status
from .notebook import session_args
from .session import Budget, campaign_figures, figure_path, gpu_preflight, probe_entry, run_session, status
from .spec import ORDER, entries, entry_config, open_campaign, split_overrides

__all__ = ["ORDER", "Budget", "campaign_figures", "entries", "entry_config", "figure_path", "format_status",
           "gpu_preflight", "open_campaign", "plot_campaign", "probe_entry", "run_session", "session_args",
           "split_overrides", "status"]
