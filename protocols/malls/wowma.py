"""Wowma! (au PAY マーケット) (wowma): capability record. Codecs arrive with the mall-protocols issue."""

from protocols.malls.base import Capability

CAPABILITY = Capability(
    kind='wowma',
    name_ja='Wowma! (au PAY マーケット)',
    intake=('mail',),
    stock_out=('ftp', 'api'),
    ftp_dir='/',
    stock_files=('stock.csv',),
    import_formats=('wowma_stock',),
    api_batch_size=1,
    api_requests_per_s=1.0,
    unverified="not yet checked against a real file or the mall's specification",
)
