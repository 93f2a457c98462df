"""The world's raw logs (docs/contracts.md §1)."""
from __future__ import annotations

from beam_pipelines.dead_letter import BadRow
from beam_pipelines.sources.fields import parse_id

USERS_HEADER = b"user_id,age_bucket,gender,city_tier,activity_level"
ADS_HEADER = b"ad_id,category,title,attributes"
SF_HEADER = b"impression_id,user_id,query,sf_keyword,day,ts,clicked"
AD_IMPRESSIONS_HEADER = b"impression_id,user_id,query,ad_id,position,day,ts,clicked"


def _fields(text: str, n: int) -> list[str]:
    fields = text.split(",")
    if len(fields) != n:
        raise BadRow("wrong_column_count")
    return fields


def _label(field: str) -> int:
    if field not in ("0", "1"):
        raise BadRow("bad_label")
    return int(field)


def _tokens(field: str) -> tuple[str, ...]:
    return tuple(field.split())


def parse_user(text: str):
    """``(user_id, (age_bucket, gender, city_tier, activity_level))`` as decimal strings."""
    fields = _fields(text, 5)
    ids = [parse_id(f) for f in fields]
    return ids[0], tuple(str(v) for v in ids[1:])


def parse_ad(text: str):
    """``(ad_id, (category, title_tokens))``."""
    fields = _fields(text, 4)
    return parse_id(fields[0]), (str(parse_id(fields[1])), _tokens(fields[2]))


def parse_sf_impression(text: str):
    """``(user_id, (day, ts, impression_id, query_tokens, sf_keyword, clicked))``."""
    imp, user, query, keyword, day, ts, clicked = _fields(text, 7)
    if not keyword.strip() or " " in keyword.strip():
        raise BadRow("bad_sf_keyword")
    row = (parse_id(day), parse_id(ts), parse_id(imp), _tokens(query), keyword.strip(), _label(clicked))
    return parse_id(user), row


def parse_ad_impression(text: str):
    """``(user_id, (day, ts, impression_id, query_tokens, ad_id, position, clicked))``."""
    imp, user, query, ad, position, day, ts, clicked = _fields(text, 8)
    row = (parse_id(day), parse_id(ts), parse_id(imp), _tokens(query), parse_id(ad),
           parse_id(position), _label(clicked))
    return parse_id(user), row


def check_sf_impression(text: str, profiles):
    """``(user_id, text)`` of a valid SF impression line of a known user (else BadRow).

    The line is checked here, where its file and line number are known, and travels to the
    per-user grouping as its text: the local runner holds a grouping's values as Python
    objects, and a line is about 5x smaller than its parsed row with its position.
    impression_columns parses it again, a shard's lines at a time.
    """
    user, _ = parse_sf_impression(text)
    if user not in profiles:
        raise BadRow("unknown_user_id")
    return user, text


def check_ad_impression(text: str, profiles, ads):
    """``(user_id, text)`` of a valid ad impression line of a known user and ad (else BadRow);
    see check_sf_impression."""
    user, (_, _, _, _, ad_id, _, _) = parse_ad_impression(text)
    if user not in profiles:
        raise BadRow("unknown_user_id")
    if ad_id not in ads:
        raise BadRow("unknown_ad_id")
    return user, text
