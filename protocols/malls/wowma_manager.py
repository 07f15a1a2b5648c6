"""Wowma!(Wow! manager) (wowma_manager): capability record. Codecs arrive with the mall-protocols issue."""

from protocols.malls.base import Capability

CAPABILITY = Capability(
    kind='wowma_manager',
    name_ja='Wowma!(Wow! manager)',
    intake=('api',),
    stock_out=('api',),
    api_batch_size=1,
    api_requests_per_s=1.0,
    unverified="not yet checked against a real file or the mall's specification",
)
