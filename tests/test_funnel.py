"""What a run counted once (its written rows and its quarantine by source and reason): the accounting
figures and the printed funnel both come from it."""

from mfr.pipeline import funnel_rows
from mfr.runner import Outcomes


def test_a_runs_counts_give_kept_rejected_and_quarantined_in_total_and_per_source():
    counted = Outcomes(
        written={("charts", None): 7, ("charts", "image_missing"): 1, ("grids", None): 4,
                 ("grids", "too_short"): 2, ("grids", "pending_model"): 3},
        quarantined={("grids", "duplicate_id"): 1, ("maps", "key_missing"): 2},
    )
    assert (counted.kept, counted.quarantined_rows) == (11, 3)
    assert counted.rejected_by_reason() == {"image_missing": 1, "too_short": 2, "pending_model": 3}
    # a source with quarantined rows only still has its line; reasons most frequent first
    assert funnel_rows(counted) == [
        ("charts", 8, 7, 1, "image_missing=1"),
        ("grids", 10, 4, 5, "pending_model=3, too_short=2, quarantined=1"),
        ("maps", 2, 0, 0, "quarantined=2"),
    ]


def test_equal_counts_list_their_reasons_by_name_and_a_table_without_sources_has_one_line():
    counted = Outcomes(written={(None, "b"): 1, (None, "a"): 1, (None, None): 2})
    assert funnel_rows(counted) == [("(no source)", 4, 2, 2, "a=1, b=1")]
