"""quick_init builds the same frozen values as the dataclass-generated __init__, only sooner."""

from __future__ import annotations

import inspect
import pickle
from dataclasses import FrozenInstanceError, dataclass, field, replace
from datetime import date

import pytest

from fhir_cml.domain.frozen import quick_init
from fhir_cml.domain.model import BcrAbl1Result, PatientRecord


@dataclass(frozen=True, slots=True)
class Plain:
    ref: str
    day: date
    value: float | None = None
    tags: tuple[str, ...] = ()


@quick_init
@dataclass(frozen=True, slots=True)
class Quick:
    ref: str
    day: date
    value: float | None = None
    tags: tuple[str, ...] = ()


DAY = date(2024, 5, 2)


def test_same_parameters_and_defaults() -> None:
    plain = inspect.signature(Plain.__init__).parameters
    quick = inspect.signature(Quick.__init__).parameters
    assert list(quick) == list(plain)
    assert [p.default for p in quick.values()] == [p.default for p in plain.values()]
    assert Quick.__init__.__qualname__ == "Quick.__init__"


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [(("a", DAY), {}), (("a", DAY, 1.5), {}), (("a",), {"day": DAY, "tags": ("x",)}), ((), {"ref": "a", "day": DAY})],
)  # fmt: skip
def test_same_values(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    plain, quick = Plain(*args, **kwargs), Quick(*args, **kwargs)  # type: ignore[arg-type]
    assert repr(quick).replace("Quick", "Plain") == repr(plain)
    assert quick == Quick(*args, **kwargs)  # type: ignore[arg-type]
    assert hash(quick) == hash(Quick(*args, **kwargs))  # type: ignore[arg-type]


def test_still_frozen_and_copyable() -> None:
    quick = Quick("a", DAY, 2.0)
    with pytest.raises(FrozenInstanceError):
        quick.value = 3.0  # type: ignore[misc]
    assert replace(quick, value=3.0) == Quick("a", DAY, 3.0)
    assert pickle.loads(pickle.dumps(quick)) == quick


def test_same_errors_for_wrong_arguments() -> None:
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'day'"):
        Quick("a")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'other'"):
        Quick("a", DAY, other=1)  # type: ignore[call-arg]


def test_only_for_what_it_can_build() -> None:
    with pytest.raises(TypeError):

        @quick_init
        @dataclass(frozen=True, slots=True)
        class WithFactory:
            items: list[int] = field(default_factory=list)

    with pytest.raises(TypeError):

        @quick_init
        @dataclass(frozen=True)
        class WithoutSlots:
            ref: str


def test_the_domain_values_use_it() -> None:
    result = BcrAbl1Result("Observation/1", DAY, True, 0.1, True)
    assert result.derived_from == "percent"
    assert PatientRecord("Patient/1").issues == ()
    assert BcrAbl1Result.__init__.__module__ == "fhir_cml.domain.model"


def test_the_values_built_most_use_it() -> None:
    """The values a patient's assessment builds by the dozen (bench/README, scale_bench) are
    built by quick_init's __init__, which sets each slot through its own setter."""
    from fhir_cml.domain.basis import Basis
    from fhir_cml.domain.model import LabValue
    from fhir_cml.domain.results import MilestoneReading
    from fhir_cml.domain.rules.milestones import Item
    from fhir_cml.domain.rules.response_depth import DepthCall

    for cls in (Basis, Item, DepthCall, LabValue, BcrAbl1Result, MilestoneReading):
        names = cls.__init__.__code__.co_names
        assert any(name.startswith("_set_") for name in names), cls.__name__
