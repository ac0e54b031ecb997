"""Text folding shared by every lexical signal, so that the query and the entries meet on the
same surface: NFKC (half-width katakana, full-width letters and digits), case folding, one kana
script, unified long-vowel marks; plus the kana "reading key" and a light English stemmer."""

from __future__ import annotations

import re
import unicodedata

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_SPACES = re.compile(r"\s+")
# After NFKC a long-vowel mark typed as a dash or tilde still differs from ー; only after kana
# is it a long vowel (コワ-キング), elsewhere it is a real hyphen (Wi-Fi, 0-3歳).
_LONG_VOWEL = re.compile(r"(?<=[\u3041-\u3096\u30a1-\u30fa])[-‐‑‒–—―−~〜～ｰ]")
_HIRA_TO_KATA = {cp: cp + 0x60 for cp in range(0x3041, 0x3097)}
# Reading key: spelling variants of the same sound collapse (ヴァ/バ, ヂ/ジ, ヅ/ズ, ヲ/オ), and
# long-vowel marks and middle dots vanish (コンピューター/コンピュータ).
_READING_FOLD = str.maketrans(
    {"ヴ": "ブ", "ヂ": "ジ", "ヅ": "ズ", "ヲ": "オ", "ヰ": "イ", "ヱ": "エ", "ヵ": "カ", "ヶ": "ケ"}
)
_READING_DROP = re.compile(r"[ー・=\s]")
# The analyser gives pronunciations (エーゴ for 英語) while people type spellings (えいご): fold
# the spelled long vowels オウ/エイ the way the pronunciation writes them.
_LONG_O = re.compile(r"(?<=[オコソトノホモヨロゴゾドボポョォ])ウ")
_LONG_E = re.compile(r"(?<=[エケセテネヘメレゲゼデベペ])イ")
_KANA_ONLY = re.compile(r"^[\u3041-\u3096\u30a1-\u30fa\u30fc]+$")
_HAS_KANJI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_HAS_KANA = re.compile(r"[\u3041-\u3096\u30a1-\u30fa]")
_HAS_LATIN = re.compile(r"[a-z]")


# A trailing aside in brackets that is not Japanese words: (笑), (汗), (load 123), 【test 2】.
_ASIDE = re.compile(r"\s*[(（\[【]([\x20-\x7e]{1,30}|[笑汗泣涙]{1,3})[)）\]】]\s*$")
_JAPANESE = re.compile(r"[\u3041-\u3096\u30a1-\u30fa\u3400-\u4dbf\u4e00-\u9fff]")


def strip_aside(text: str) -> str:
    """Drop a trailing bracketed aside from a Japanese message: chat users add (笑) or (汗),
    and the webhook load generator appends " (load 123)". Its ASCII words would otherwise count
    as unknown English terms and make a plain question look out of scope. English messages
    keep theirs ("is it free (for children)?"), and so does a message that is only an aside."""
    m = _ASIDE.search(text)
    if m is None or not _JAPANESE.search(text[: m.start()]):
        return text
    return text[: m.start()]


def fold(text: str) -> str:
    """NFKC, no control characters, case-folded, single spaces, long-vowel marks unified."""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text).casefold()
    text = _LONG_VOWEL.sub("ー", text)
    return _SPACES.sub(" ", text).strip()


def to_katakana(text: str) -> str:
    return text.translate(_HIRA_TO_KATA)


def reading_key(reading: str) -> str:
    """A katakana reading with variant spellings of one sound collapsed."""
    kata = to_katakana(reading).translate(_READING_FOLD)
    return _READING_DROP.sub("", _LONG_E.sub("", _LONG_O.sub("", kata)))


def is_kana(text: str) -> bool:
    return bool(_KANA_ONLY.match(text))


def script_profile(folded: str) -> dict[str, float]:
    """Which scripts a folded query uses: kana-only and Latin-only queries need other signals."""
    chars = [c for c in folded if not c.isspace()]
    n = max(len(chars), 1)
    latin = sum(1 for c in chars if "a" <= c <= "z")
    kanji = sum(1 for c in chars if _HAS_KANJI.match(c))
    kana = sum(1 for c in chars if _HAS_KANA.match(c))
    return {
        "q_latin_ratio": latin / n,
        "q_kanji_ratio": kanji / n,
        "q_kana_only": float(kanji == 0 and latin == 0 and kana > 0),
    }


# --- English -----------------------------------------------------------------------------
_EN_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
EN_STOP = frozenset(
    """a an the and or but if of to in on at for from by with about as into is are was were be
    been being am do does did doing have has had having i me my we our you your he she
    it its they them their this that these those there here what which who whom whose
    when where why how can could would should will shall may might must not no so than
    too very just also any some all please tell know want like get need let s t""".split()  # noqa: SIM905
)


def stem_en(word: str) -> str:
    """A light, predictable English stemmer: enough to meet plural/-ing/-ed forms of the same word
    on both sides (applied identically to queries and entries, so it need not be linguistic)."""
    w = word.replace("'", "").replace("’", "")
    if len(w) <= 3:
        return w
    for suffix, repl, min_len in (
        ("ies", "y", 5),
        ("sses", "ss", 5),
        ("ing", "", 6),
        ("ied", "y", 5),
        ("ed", "", 5),
        ("es", "", 5),
        ("s", "", 4),
    ):
        if w.endswith(suffix) and len(w) >= min_len:
            if suffix == "s" and w.endswith(("ss", "us", "is")):
                continue
            if suffix == "es" and not w.endswith(("ches", "shes", "xes", "sses", "zes")):
                continue
            w = w[: len(w) - len(suffix)] + repl
            # running -> runn -> run, stopped -> stopp -> stop
            if suffix in ("ing", "ed") and len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]
            break
    return w


def english_words(folded: str) -> list[str]:
    """The Latin words of a folded text, unstemmed ('wi-fi' is one word: 'wifi')."""
    return _EN_WORD.findall(folded.replace("-", ""))


def english_terms(folded: str) -> list[str]:
    """Stemmed content words of the Latin part of a folded text ('wi-fi' is one word: 'wifi')."""
    text = folded.replace("-", "")
    return [stem_en(w) for w in _EN_WORD.findall(text) if w not in EN_STOP and not w.isdigit()]
