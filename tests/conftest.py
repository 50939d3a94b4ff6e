"""Shared fixtures: tiny data and models so the suite stays fast on 2 CPU cores."""

from __future__ import annotations

import pytest
import torch

from ratt import data


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    torch.set_num_threads(2)
    yield


@pytest.fixture(scope="session")
def digits_test():
    return data.load("digits", "test")


@pytest.fixture(scope="session")
def digits_train():
    return data.load("digits", "train")
