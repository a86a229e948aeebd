"""Page sections drawn from the score phase's candidates: score, size and head-pose tables with their plots."""

from curation.report.html_parts import cell, figures, missing, stat, table, text_cell

SUMMARY = ("count", "mean", "p05", "p50", "p95")
SUMMARY_HEADERS = ["value", *SUMMARY, "threshold", "from", "rejects", "rows on rejecting side"]


def _summary_rows(stats: dict, section: str, names: list[str]) -> list[list[str]]:
    """One row per summary (the section itself when the name is empty), threshold columns when it has one."""
    rows = []
    for name in names:
        p = f"{section}.{name}" if name else section
        s = stats[section][name] if name else stats[section]
        row = [text_cell(name or section)] + [cell(stats, f"{p}.{k}") for k in SUMMARY]
        if "threshold" in s:
            row += [cell(stats, f"{p}.threshold"), text_cell(s["threshold_source"]), text_cell(s["rejects"])]
            row += [cell(stats, f"{p}.on_rejecting_side")]
        else:
            row += ["<td>&ndash;</td>"] * 4
        rows.append(row)
    return rows


def scores_section(stats: dict, images: dict[str, bytes]) -> list[str]:
    out = ["<h2>2. Scores</h2>"]
    if stats["scores"] is None:
        return [*out, missing("Score histograms", "score")]
    out.append(table(SUMMARY_HEADERS, _summary_rows(stats, "scores", list(stats["scores"]))))
    return out + figures(stats, images, [f"score_{name}" for name in stats["scores"]])


def sizes_section(stats: dict, images: dict[str, bytes]) -> list[str]:
    out = ["<h2>3. Person size and resolution</h2>"]
    if stats["person_short_side"] is None:
        return [*out, missing("Person and image sizes", "score")]
    rows = _summary_rows(stats, "person_short_side", [""])
    rows += _summary_rows(stats, "resolution", ["width", "height", "short_side"])
    out.append(table(SUMMARY_HEADERS, rows))
    out.append(f"<p>Images with no confident person box: {stat(stats, 'person_short_side.no_person_box')}.</p>")
    return out + figures(stats, images, ["person_short_side", "resolution"])


def head_pose_section(stats: dict, images: dict[str, bytes]) -> list[str]:
    out = ["<h2>4. Head pose</h2>"]
    pose = stats["head_pose"]
    if pose is None:
        return [*out, missing("Head pose", "score")]
    groups = list(pose)
    classes = list(dict.fromkeys(c for g in groups for c in pose[g]))
    rows = [[text_cell(c)] + [cell(stats, f"head_pose.{g}.{c}") for g in groups] for c in classes]
    out.append(table(["yaw class", *groups], rows))
    return out + figures(stats, images, ["head_pose"])
