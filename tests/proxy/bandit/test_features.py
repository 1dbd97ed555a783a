from __future__ import annotations

from slotwise.plugins.schema import SignalSchema, SignalSpec, SignalType
from slotwise.proxy.bandit.features import FeatureMap, bucket, octave, uses_personal_features


def test_small_numbers_are_exact_and_large_ones_fall_in_quarter_octaves() -> None:
    assert bucket(3) == "3"
    assert bucket(2.5) == "2+"
    assert bucket(21) == "21"
    assert bucket(25) == bucket(27) == "24..27"
    assert bucket(33) == "32..39"
    assert bucket(-40) == "-40..47"
    assert bucket(float("nan")) == "nan"
    assert octave(21) == octave(16) == "16..31"
    assert octave(1) == "1" and octave(-5) == "-4..7"


def test_signals_go_to_their_namespaces_and_consent_is_no_feature() -> None:
    features = FeatureMap().shared(
        {
            "user.age": 21,
            "user.segments": ("loyal", "vip"),
            "cart.value": 80.0,
            "device.type": "mobile",
            "geo.country": "DE",
            "time.daypart": "night",
            "request.path": "/x",
            "ad.placement": "top",
            "weather.rain": True,
            "consent.level": "personal",
        },
        personal=True,
    )
    assert features == {
        "user": [
            "user.age~21",
            "user.age~~16..31",
            "user.segments=loyal",
            "user.segments=vip",
            "cart.value~80..95",
            "cart.value~~64..127",
        ],
        "device": ["device.type=mobile"],
        "geo": ["geo.country=DE"],
        "time": ["time.daypart=night"],
        "context": ["request.path=/x", "ad.placement=top", "weather.rain=true"],
    }


def test_without_consent_nothing_personal_is_used_or_kept() -> None:
    schema = SignalSchema(
        {"crm.tier": SignalSpec("crm.tier", SignalType.STRING, "crm", "tier", personal=True)}
    )
    fmap = FeatureMap(schema)
    signals = {"user.age": 30, "crm.tier": "gold", "device.type": "desktop"}
    assert fmap.shared(signals, personal=False) == {"device": ["device.type=desktop"]}
    assert fmap.usable_signals(signals, personal=False) == {"device.type": "desktop"}
    assert fmap.shared(signals, personal=True)["user"] == [
        "user.age~28..31",
        "user.age~~16..31",
        "crm.tier=gold",
    ]


def test_new_users_and_no_consent_get_the_contextual_model() -> None:
    assert uses_personal_features({"consent.level": "personal", "user.is_new": False})
    assert not uses_personal_features({"consent.level": "personal", "user.is_new": True})
    assert not uses_personal_features({"consent.level": "contextual"})
    assert not uses_personal_features({})


def test_memoised_features_keep_types_apart() -> None:
    fmap = FeatureMap()
    assert fmap.shared({"request.flag": True}, personal=False) == {"context": ["request.flag=true"]}
    assert fmap.shared({"request.flag": 1}, personal=False) == {
        "context": ["request.flag~1", "request.flag~~1"]
    }
    assert fmap.shared({"request.flag": True}, personal=False) == {"context": ["request.flag=true"]}


def test_the_usable_signals_features_are_what_split_gives() -> None:
    """The request path asks ``usable_signals`` first and ``shared`` of them only when VW
    predicts: the same signals kept and the same features, in the same order, as ``split``."""
    schema = SignalSchema(
        {"crm.tier": SignalSpec("crm.tier", SignalType.STRING, "crm", "tier", personal=True)}
    )
    signals = {
        "consent.level": "personal",
        "user.age": 30,
        "crm.tier": "gold",
        "device.type": "desktop",
        "geo.country": "DE",
        "cart.items": ("a", "b"),
        "request.path": "/x",
    }
    for personal in (True, False):
        fmap = FeatureMap(schema)
        used = fmap.usable_signals(signals, personal=personal)
        kept, shared = FeatureMap(schema).split(signals, personal=personal)
        assert list(used.items()) == list(kept.items())
        assert fmap.shared(used, personal=personal) == shared
