"""Backup files and their catalog: a store (a local directory, or S3 and S3-compatible servers), the
catalog in kubemaint's Redis, and `Backups`, which keeps the two together (retention included).

Operations get a `Backups` as the resource "backups" (handlers/resources.py). Nothing here knows the
cluster or the nodes: the operations hand in a local file and what they measured about it.
"""

from bot.backups.catalog import KINDS, Catalog, Entry, Page, UnknownBackup
from bot.backups.local import LocalStore
from bot.backups.s3 import S3Store
from bot.backups.service import Backups
from bot.backups.store import BackupMissing, BackupStore, BackupStoreError, ChecksumMismatch, Location

__all__ = [
    "KINDS", "BackupMissing", "BackupStore", "BackupStoreError", "Backups", "Catalog", "ChecksumMismatch", "Entry",
    "LocalStore", "Location", "Page", "S3Store", "UnknownBackup",
]
