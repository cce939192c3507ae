"""The app's data screens: the home screen fan-out, one screen per department, data-access ledger."""

from bff.screens.controllers import ScreensController
from bff.screens.dependencies import SCREENS_DEPENDENCIES, provide_screens
from bff.screens.repository import DataAccessRepository
from bff.screens.service import CodesSummary, ScreenService, mask_card_no

__all__ = [
    "SCREENS_DEPENDENCIES",
    "CodesSummary",
    "DataAccessRepository",
    "ScreenService",
    "ScreensController",
    "mask_card_no",
    "provide_screens",
]
