"""Ali-CCP rows: the AITM ``ctr_cvr`` csv and the raw skeleton / common-features files
(../shared/data/ali_ccp/SOURCE.md)."""
from __future__ import annotations

from beam_pipelines.dead_letter import BadRow
from beam_pipelines.sources.fields import parse_id

# Header of the AITM csv (paddlerec_aitm_ctr_cvr_train.csv); test.csv has no header line.
AITM_COLUMNS = ("click", "purchase", "101", "121", "122", "124", "125", "126", "127", "128",
                "129", "205", "206", "207", "216", "508", "509", "702", "853", "301")
AITM_HEADER = ",".join(AITM_COLUMNS).encode()
AITM_FIELDS = AITM_COLUMNS[2:]
# Single-valued categorical fields of the raw format (the AITM set plus 210).
RAW_FIELDS = ("101", "121", "122", "124", "125", "126", "127", "128", "129", "205", "206",
              "207", "210", "216", "301", "508", "509", "702", "853")


def _labels(click: str, conversion: str) -> tuple[int, int]:
    if click not in ("0", "1") or conversion not in ("0", "1"):
        raise BadRow("bad_label")
    if conversion == "1" and click == "0":
        raise BadRow("conversion_without_click")
    return int(click), int(conversion)


def parse_aitm_row(text: str):
    """``(None, ((click, conversion), {field: value}))``; the caller adds the row id."""
    fields = text.split(",")
    if len(fields) != len(AITM_COLUMNS):
        raise BadRow("wrong_column_count")
    labels = _labels(fields[0], fields[1])
    values = {name: str(parse_id(v)) for name, v in zip(AITM_FIELDS, fields[2:])}
    return labels, values


def parse_feature_list(text: str, expected: int) -> dict[str, list[str]]:
    """``field\\x02feature_id\\x03value`` items joined by ``\\x01`` -> {field: [feature_id]}."""
    items = text.split("\x01") if text else []
    if len(items) != expected:
        raise BadRow("feature_count_mismatch")
    out: dict[str, list[str]] = {}
    for item in items:
        field, sep, rest = item.partition("\x02")
        feature_id, sep2, value = rest.partition("\x03")
        if not sep or not sep2 or not field:
            raise BadRow("bad_feature")
        try:
            float(value)
        except ValueError:
            raise BadRow("bad_feature") from None
        out.setdefault(field, []).append(str(parse_id(feature_id)))
    return out


def parse_skeleton(text: str):
    """``(common_feature_index, (sample_id, (click, conversion), {field: [ids]}))``."""
    fields = text.split(",", 5)
    if len(fields) != 6:
        raise BadRow("wrong_column_count")
    sample_id, click, conversion, common_index, feature_num, feature_list = fields
    labels = _labels(click, conversion)
    features = parse_feature_list(feature_list, parse_id(feature_num))
    return common_index, (parse_id(sample_id), labels, features)


def parse_common_features(text: str):
    """``(common_feature_index, {field: [ids]})``."""
    fields = text.split(",", 2)
    if len(fields) != 3:
        raise BadRow("wrong_column_count")
    common_index, feature_num, feature_list = fields
    if not common_index:
        raise BadRow("missing_common_feature_index")
    return common_index, parse_feature_list(feature_list, parse_id(feature_num))
