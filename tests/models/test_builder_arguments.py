"""A user's model builder gets the data's ``num_classes``, ``in_channels`` and ``image_size``
when its signature names them; ``model.kwargs`` come on top."""

from __future__ import annotations

from ratt.models import create_model

BUILDERS = """
from torch import nn

def build(num_classes, in_channels, width=1):
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.Flatten(),
                         nn.LazyLinear(num_classes))

def sized(image_size, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(image_size * image_size, num_classes))

def plain():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
"""


def test_a_builder_receives_the_data_arguments_it_names(tmp_path):
    (tmp_path / "nets.py").write_text(BUILDERS)
    model = create_model(f"{tmp_path / 'nets.py'}:build", 7, (3, 12, 12), kwargs={"width": 5})
    assert model[0].in_channels == 3 and model[0].out_channels == 5 and model[2].out_features == 7
    sized = create_model(f"{tmp_path / 'nets.py'}:sized", 4, (1, 6, 6))
    assert sized[1].in_features == 36 and sized[1].out_features == 4
    plain = create_model(f"{tmp_path / 'nets.py'}:plain", 10, (1, 8, 8))  # names none: gets none
    assert plain[1].in_features == 64
