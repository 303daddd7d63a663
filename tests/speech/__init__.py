"""Tests of the speech service (speech/)."""
