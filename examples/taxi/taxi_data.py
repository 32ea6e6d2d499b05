"""Synthetic NYC-taxi-style trips with knobs for data drift and concept drift.

Every row is a trip: where it starts and ends, how far it goes, when it starts, how many
ride, and how long it took (`duration_min`, the target). Nothing is downloaded: the same
`n`, `seed` and `Drift` always give the same frame.

Each column draws from its own random stream (spawned from one seed), so a knob moves only
the columns it is about. Data-drift knobs move the inputs; concept-drift knobs
(`speed_factor`, `rush_hour_penalty`) move only the target, leaving every feature column
identical for the same seed.

    python taxi_data.py --rows 1000 --seed 1 --distance-scale 1.5 --out trips.csv
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

FEATURES = [
    "pickup_zone",
    "dropoff_zone",
    "trip_distance",
    "pickup_hour",
    "pickup_weekday",
    "passenger_count",
]
CATEGORICAL_FEATURES = ["pickup_zone", "dropoff_zone"]
NUMERIC_FEATURES = [f for f in FEATURES if f not in CATEGORICAL_FEATURES]
TARGET = "duration_min"


@dataclass(frozen=True)
class Zone:
    x_km: float  # rough position on a map centred on Midtown
    y_km: float
    popularity: float  # share of trips under the "normal" mix, before normalising
    speed: float  # traffic in the zone: below 1 is slower than the city's average


ZONES: dict[str, Zone] = {
    "Midtown": Zone(0.0, 0.0, 0.22, 0.70),
    "Upper-East-Side": Zone(2.0, 4.0, 0.12, 0.90),
    "Upper-West-Side": Zone(-1.0, 4.5, 0.10, 0.90),
    "Chelsea": Zone(-1.5, -2.0, 0.10, 0.80),
    "Financial-District": Zone(-1.0, -7.0, 0.09, 0.80),
    "Harlem": Zone(1.0, 8.0, 0.05, 1.00),
    "Williamsburg": Zone(3.0, -4.0, 0.07, 1.00),
    "Park-Slope": Zone(1.0, -10.0, 0.04, 1.00),
    "Astoria": Zone(6.0, 5.0, 0.04, 1.05),
    "Long-Island-City": Zone(4.0, 1.0, 0.04, 1.05),
    "JFK-Airport": Zone(18.0, -10.0, 0.07, 1.40),
    "LaGuardia-Airport": Zone(10.0, 6.0, 0.06, 1.30),
}
# Never drawn by the "normal" generator, so a model trained on it has never seen it.
UNSEEN_ZONE = "Newark-Airport"
_UNSEEN = Zone(-14.0, -12.0, 0.0, 1.40)

# zone_mix: multipliers on the base popularity of the named zones (others keep theirs).
ZONE_MIXES: dict[str, dict[str, float]] = {
    "normal": {},
    "airports": {"JFK-Airport": 4.0, "LaGuardia-Airport": 4.0},
    "outer-boroughs": {
        "Williamsburg": 4.0,
        "Park-Slope": 4.0,
        "Astoria": 4.0,
        "Long-Island-City": 4.0,
        "Midtown": 0.5,
    },
}

# hour_profile: relative number of pickups in each hour 0-23.
# fmt: off
HOUR_PROFILES: dict[str, tuple[float, ...]] = {
    # Morning and evening peaks, quiet before dawn.
    "normal": (
        0.8, 0.5, 0.35, 0.25, 0.25, 0.4, 1.0, 2.2, 3.0, 2.8, 2.2, 2.1,
        2.3, 2.3, 2.4, 2.6, 3.0, 3.3, 3.4, 3.0, 2.6, 2.3, 2.0, 1.4,
    ),
    # Nightlife: most pickups between 20:00 and 03:00.
    "night": (
        3.0, 2.6, 2.2, 1.8, 1.2, 0.6, 0.4, 0.5, 0.6, 0.6, 0.6, 0.6,
        0.7, 0.7, 0.7, 0.8, 0.9, 1.0, 1.4, 2.0, 2.6, 3.0, 3.3, 3.2,
    ),
}
# fmt: on
WEEKDAY_WEIGHTS = (1.0, 1.0, 1.05, 1.1, 1.2, 1.2, 0.9)  # Monday (0) to Sunday (6)
PASSENGER_WEIGHTS = (0.70, 0.15, 0.05, 0.03, 0.04, 0.03)  # 1 to 6 riders

RUSH_HOURS = frozenset({7, 8, 9, 16, 17, 18, 19})  # on weekdays only
NIGHT_HOURS = frozenset({0, 1, 2, 3, 4, 5})
BASE_SPEED_KMH = 27.0
RUSH_SLOWDOWN = 0.6
NIGHT_SPEEDUP = 1.35
ROAD_FACTOR = 1.25  # streets are longer than the straight line between two zones
MIN_TRIP_KM = 1.2  # a trip within one zone still goes somewhere
PICKUP_OVERHEAD_MIN = 3.0

# One random stream per column, in a fixed order: adding a stream at the end keeps the
# others' draws, so a knob cannot shift a column it is not about.
_STREAMS = (
    "pickup_zone",
    "dropoff_zone",
    "distance_noise",
    "pickup_hour",
    "pickup_weekday",
    "passenger_count",
    "unseen_zone",
    "missing",
    "duration_noise",
)


@dataclass(frozen=True)
class Drift:
    """How the generated trips differ from the training distribution; defaults are neutral.

    Data drift (the inputs change):
      distance_scale     multiplies every trip_distance
      zone_mix           a name in ZONE_MIXES: reweights how popular the zones are
      hour_profile       a name in HOUR_PROFILES: when in the day pickups happen
      unseen_zone_share  share of rows whose pickup or dropoff is UNSEEN_ZONE
      missing_share      share of rows with passenger_count or trip_distance missing (NaN)
    Concept drift (the same inputs take a different time; the inputs do not change):
      speed_factor       multiplies the speed of every trip
      rush_hour_penalty  extra minutes for trips that start in a weekday rush hour
    """

    distance_scale: float = 1.0
    zone_mix: str = "normal"
    hour_profile: str = "normal"
    unseen_zone_share: float = 0.0
    missing_share: float = 0.0
    speed_factor: float = 1.0
    rush_hour_penalty: float = 0.0

    def __post_init__(self) -> None:
        if not self.distance_scale > 0:
            raise ValueError(f"distance_scale must be > 0, not {self.distance_scale}")
        if self.zone_mix not in ZONE_MIXES:
            raise ValueError(f"zone_mix must be one of {sorted(ZONE_MIXES)}, not {self.zone_mix!r}")
        if self.hour_profile not in HOUR_PROFILES:
            raise ValueError(
                f"hour_profile must be one of {sorted(HOUR_PROFILES)}, not {self.hour_profile!r}"
            )
        for name in ("unseen_zone_share", "missing_share"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {share}")
        if not self.speed_factor > 0:
            raise ValueError(f"speed_factor must be > 0, not {self.speed_factor}")
        if not self.rush_hour_penalty >= 0:
            raise ValueError(f"rush_hour_penalty must be >= 0, not {self.rush_hour_penalty}")


def zone_probabilities(zone_mix: str = "normal") -> dict[str, float]:
    """The share of pickups (and of dropoffs) in each zone under a named mix."""
    boost = ZONE_MIXES[zone_mix]
    weights = {name: zone.popularity * boost.get(name, 1.0) for name, zone in ZONES.items()}
    total = sum(weights.values())
    return {name: weight / total for name, weight in weights.items()}


def _normalised(weights: tuple[float, ...]) -> np.ndarray:
    array = np.asarray(weights, dtype=float)
    return array / array.sum()


def generate(n: int, seed: int, drift: Drift = Drift()) -> pd.DataFrame:
    """`n` trips drawn with `seed`, shifted by `drift`: FEATURES then TARGET."""
    if n < 0:
        raise ValueError(f"n must be >= 0, not {n}")
    seeds = np.random.SeedSequence(seed).spawn(len(_STREAMS))
    rng = {name: np.random.default_rng(s) for name, s in zip(_STREAMS, seeds, strict=True)}

    mix = zone_probabilities(drift.zone_mix)
    names = np.array(list(mix))
    pickup = rng["pickup_zone"].choice(names, size=n, p=list(mix.values())).astype(object)
    dropoff = rng["dropoff_zone"].choice(names, size=n, p=list(mix.values())).astype(object)
    # Every row draws from each stream, whatever the share, so rows stay aligned.
    unseen_rows = rng["unseen_zone"].random(n) < drift.unseen_zone_share
    unseen_at_pickup = rng["unseen_zone"].random(n) < 0.5
    pickup[unseen_rows & unseen_at_pickup] = UNSEEN_ZONE
    dropoff[unseen_rows & ~unseen_at_pickup] = UNSEEN_ZONE

    zones = {**ZONES, UNSEEN_ZONE: _UNSEEN}
    x = {name: zone.x_km for name, zone in zones.items()}
    y = {name: zone.y_km for name, zone in zones.items()}
    straight_km = np.hypot(
        np.vectorize(x.get)(pickup) - np.vectorize(x.get)(dropoff),
        np.vectorize(y.get)(pickup) - np.vectorize(y.get)(dropoff),
    )
    distance_noise = rng["distance_noise"].lognormal(0.0, 0.2, size=n)
    distance_km = np.maximum(straight_km * ROAD_FACTOR, MIN_TRIP_KM) * distance_noise
    distance_km = np.maximum(distance_km * drift.distance_scale, 0.1)

    hour = rng["pickup_hour"].choice(24, size=n, p=_normalised(HOUR_PROFILES[drift.hour_profile]))
    weekday = rng["pickup_weekday"].choice(7, size=n, p=_normalised(WEEKDAY_WEIGHTS))
    # Float, not int: a missing count is NaN, and a model's signature must accept it.
    passengers = rng["passenger_count"].choice(6, size=n, p=_normalised(PASSENGER_WEIGHTS)) + 1.0

    speed = {name: zone.speed for name, zone in zones.items()}
    zone_speed = np.sqrt(np.vectorize(speed.get)(pickup) * np.vectorize(speed.get)(dropoff))
    rush = np.isin(hour, list(RUSH_HOURS)) & (weekday < 5)
    night = np.isin(hour, list(NIGHT_HOURS))
    speed_kmh = (
        BASE_SPEED_KMH
        * zone_speed
        * np.where(rush, RUSH_SLOWDOWN, 1.0)
        * np.where(night, NIGHT_SPEEDUP, 1.0)
        * drift.speed_factor
    )
    duration = PICKUP_OVERHEAD_MIN + distance_km / speed_kmh * 60.0
    duration += np.where(rush, drift.rush_hour_penalty, 0.0)
    duration *= rng["duration_noise"].lognormal(0.0, 0.12, size=n)

    # Missing values hide what was recorded, not what happened: the duration above used
    # the true distance.
    missing_rows = rng["missing"].random(n) < drift.missing_share
    missing_count = rng["missing"].random(n) < 0.5
    recorded_km = np.where(missing_rows & ~missing_count, np.nan, distance_km)
    recorded_passengers = np.where(missing_rows & missing_count, np.nan, passengers)

    return pd.DataFrame(
        {
            "pickup_zone": pickup,
            "dropoff_zone": dropoff,
            "trip_distance": recorded_km.round(3),
            "pickup_hour": hour.astype(np.int64),
            "pickup_weekday": weekday.astype(np.int64),
            "passenger_count": recorded_passengers,
            TARGET: duration.round(2),
        }
    )


def add_drift_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one --flag per Drift field, defaulting to the neutral value."""
    group = parser.add_argument_group("drift knobs (defaults: no drift)")
    for field in dataclasses.fields(Drift):
        flag = "--" + field.name.replace("_", "-")
        if field.name == "zone_mix":
            group.add_argument(flag, choices=sorted(ZONE_MIXES), default=field.default)
        elif field.name == "hour_profile":
            group.add_argument(flag, choices=sorted(HOUR_PROFILES), default=field.default)
        else:
            group.add_argument(flag, type=float, default=field.default)


def drift_from_arguments(args: argparse.Namespace) -> Drift:
    """The Drift that add_drift_arguments' flags describe; ValueError if a value is out of range."""
    return Drift(**{field.name: getattr(args, field.name) for field in dataclasses.fields(Drift)})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write synthetic taxi trips to a CSV file.")
    parser.add_argument("--rows", type=int, default=1000, help="number of trips (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    add_drift_arguments(parser)
    args = parser.parse_args(argv)
    try:
        drift = drift_from_arguments(args)
        trips = generate(args.rows, args.seed, drift)
    except ValueError as error:
        parser.error(str(error))
    trips.to_csv(args.out, index=False)
    print(f"wrote {len(trips)} trips to {args.out}")


if __name__ == "__main__":
    main()
