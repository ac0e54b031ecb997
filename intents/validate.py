"""Checks and normalisation of what people type into forms (names, kana, e-mail, phone,
prefecture, dates). Each returns the clean value, or None when it must be asked again."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta, tzinfo

from faq.normalize import clean

_EMAIL = re.compile(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}$")
_KANA = re.compile(r"^[\u3041-\u309f\u30a0-\u30ffー・\s]+$")
_LATIN_NAME = re.compile(r"^[A-Za-z][A-Za-z .'\-]*$")
_DASHES = re.compile(r"[\s\-‐‑‒–—―−ーｰ().]")

PREFECTURES = (
    "北海道",
    "青森県",
    "岩手県",
    "宮城県",
    "秋田県",
    "山形県",
    "福島県",
    "茨城県",
    "栃木県",
    "群馬県",
    "埼玉県",
    "千葉県",
    "東京都",
    "神奈川県",
    "新潟県",
    "富山県",
    "石川県",
    "福井県",
    "山梨県",
    "長野県",
    "岐阜県",
    "静岡県",
    "愛知県",
    "三重県",
    "滋賀県",
    "京都府",
    "大阪府",
    "兵庫県",
    "奈良県",
    "和歌山県",
    "鳥取県",
    "島根県",
    "岡山県",
    "広島県",
    "山口県",
    "徳島県",
    "香川県",
    "愛媛県",
    "高知県",
    "福岡県",
    "佐賀県",
    "長崎県",
    "熊本県",
    "大分県",
    "宮崎県",
    "鹿児島県",
    "沖縄県",
)
_ROMAJI = (
    "hokkaido",
    "aomori",
    "iwate",
    "miyagi",
    "akita",
    "yamagata",
    "fukushima",
    "ibaraki",
    "tochigi",
    "gunma",
    "saitama",
    "chiba",
    "tokyo",
    "kanagawa",
    "niigata",
    "toyama",
    "ishikawa",
    "fukui",
    "yamanashi",
    "nagano",
    "gifu",
    "shizuoka",
    "aichi",
    "mie",
    "shiga",
    "kyoto",
    "osaka",
    "hyogo",
    "nara",
    "wakayama",
    "tottori",
    "shimane",
    "okayama",
    "hiroshima",
    "yamaguchi",
    "tokushima",
    "kagawa",
    "ehime",
    "kochi",
    "fukuoka",
    "saga",
    "nagasaki",
    "kumamoto",
    "oita",
    "miyazaki",
    "kagoshima",
    "okinawa",
)
ABROAD = "海外"


def text_field(raw: str, limit: int) -> str | None:
    value = clean(raw)
    return value if 0 < len(value) <= limit else None


def name(raw: str) -> str | None:
    value = text_field(raw, 50)
    if value is None or value.isdigit() or "@" in value:
        return None
    return value


def furigana(raw: str) -> str | None:
    value = text_field(raw, 50)
    if value is None:
        return None
    if _KANA.match(value) or _LATIN_NAME.match(value):
        return value
    return None


def email(raw: str) -> str | None:
    value = clean(raw).replace(" ", "")
    if len(value) > 254 or not _EMAIL.match(value):
        return None
    return value


def phone(raw: str) -> str | None:
    """Japanese phone numbers: full-width digits, hyphens, spaces and +81 are all fine."""
    value = _DASHES.sub("", unicodedata.normalize("NFKC", raw))
    if value.startswith("+81"):
        value = "0" + value[3:].lstrip("0")
    if not value.isdigit() or not value.startswith("0") or not 10 <= len(value) <= 11:
        return None
    return value


def contact(raw: str) -> tuple[str, str] | None:
    """("email", address) or ("phone", digits)."""
    if "@" in raw or "＠" in raw:
        found = email(raw)
        return None if found is None else ("email", found)
    number = phone(raw)
    return None if number is None else ("phone", number)


def count(raw: str, low: int, high: int) -> int | None:
    value = clean(raw).removesuffix("人").removesuffix("名").strip()
    if not value.isdigit():
        return None
    number = int(value)
    return number if low <= number <= high else None


def prefecture(raw: str) -> str | None:
    value = clean(raw).replace(" ", "")
    if not value:
        return None
    if value.casefold() in ("abroad", "overseas", "海外", "かいがい"):
        return ABROAD
    folded = value.casefold().removesuffix("-to").removesuffix("-fu").removesuffix("-ken")
    folded = folded.removesuffix("prefecture").strip()
    if folded in _ROMAJI:
        return PREFECTURES[_ROMAJI.index(folded)]
    for pref in PREFECTURES:
        short = pref if pref == "北海道" else pref[:-1]
        if value in (pref, short):
            return pref
    return None


_SLOT_PATTERNS = (
    re.compile(
        r"^(?:(?P<y>\d{4})[/\-年])?(?P<m>\d{1,2})[/\-月](?P<d>\d{1,2})日?(?:\([^)]*\))?\s*"
        r"(?P<h>\d{1,2})(?:[:時](?P<mi>\d{2})?分?)?$"
    ),
)


def slot(raw: str, now: datetime, tz: tzinfo) -> datetime | None:
    """A preferred meeting time like "12/5 14:00", "12月5日 14時" or "2026-12-05 14:00":
    in the future (within about half a year), local time."""
    value = clean(raw).replace("（", "(").replace("）", ")")
    for pattern in _SLOT_PATTERNS:
        match = pattern.match(value)
        if not match:
            continue
        local_now = now.astimezone(tz)
        year = int(match["y"]) if match["y"] else local_now.year
        try:
            moment = datetime(
                year,
                int(match["m"]),
                int(match["d"]),
                int(match["h"]),
                int(match["mi"] or 0),
                tzinfo=tz,
            )
        except ValueError:
            return None
        if not match["y"] and moment <= now:
            moment = moment.replace(year=year + 1)  # "1/10" typed in December means next year
        if now < moment <= now + timedelta(days=190):
            return moment
    return None
