"""ISO 3166-1 alpha-2 country codes, for validating a case's jurisdiction without a dependency."""

from __future__ import annotations

#: The 249 officially assigned codes (ISO 3166-1, as of 2024), plus XK (Kosovo): user-assigned
#: but used by the EU, the IMF and most registries, and a victim in Kosovo must be able to file.
CODES = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
DE DJ DK DM DO DZ
EC EE EG EH ER ES ET
FI FJ FK FM FO FR
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY
HK HM HN HR HT HU
ID IE IL IM IN IO IQ IR IS IT
JE JM JO JP
KE KG KH KI KM KN KP KR KW KY KZ
LA LB LC LI LK LR LS LT LU LV LY
MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
NA NC NE NF NG NI NL NO NP NR NU NZ
OM
PA PE PF PG PH PK PL PM PN PR PS PT PW PY
QA
RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ
TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ
UA UG UM US UY UZ
VA VC VE VG VI VN VU
WF WS
YE YT
ZA ZM ZW
XK
""".split())

#: Codes people type that ISO reserves for another meaning, with the code they most likely meant.
_HINTS = {"UK": "GB", "EL": "GR", "EU": None}


def normalize_country(code: str) -> str:
    """Return `code` as an upper-case ISO 3166-1 alpha-2 code, or raise ValueError saying why."""
    c = code.strip().upper()
    if c in CODES:
        return c
    if c in _HINTS:
        better = _HINTS[c]
        hint = f"; use {better}" if better else "; give the country, not a region"
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code{hint}")
    raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code (two letters, e.g. GB, US, DE)")
