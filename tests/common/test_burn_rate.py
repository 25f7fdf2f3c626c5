"""Burn rate and projected exhaustion of a subscription window, from its samples."""
import datetime

from common.burn_rate import burn_rate_per_hour, exhaustion_at, headline, project, window_points

T0 = datetime.datetime(2026, 12, 7, 12, 0)
RESET = T0 + datetime.timedelta(hours=3)


def minutes(n):
    return T0 + datetime.timedelta(minutes=n)


def sample(at, five, reset=RESET, last_seen=None, seven=None):
    return {"timestamp": at, "last_seen": last_seen or at, "five_hour_utilization": five,
            "five_hour_resets_at": reset, "seven_day_utilization": seven,
            "seven_day_resets_at": None}


def test_a_steady_rise_gives_its_slope_and_the_time_it_reaches_full():
    samples = [sample(minutes(m), 0.40 + 0.01 * m) for m in range(0, 31, 5)]  # 1 % a minute
    rate, when = project(samples, "five_hour")
    assert abs(rate - 0.6) < 1e-9
    assert abs((when - minutes(60)).total_seconds()) < 1  # 0.70 at :30; 30 % left at 60 %/h


def test_no_projection_when_the_window_resets_first():
    samples = [sample(minutes(m), 0.10 + 0.001 * m) for m in range(0, 31, 5)]  # 6 % an hour
    rate, when = project(samples, "five_hour")
    assert abs(rate - 0.06) < 1e-9 and when is None


def test_too_little_data_is_no_rate():
    assert burn_rate_per_hour([]) is None
    assert burn_rate_per_hour([(minutes(0), 0.5)]) is None
    # One step of the API's rounding a minute apart: not a rate yet.
    assert burn_rate_per_hour([(minutes(0), 0.50), (minutes(1), 0.51)]) is None
    # The same step over half an hour is one.
    assert abs(burn_rate_per_hour([(minutes(0), 0.50), (minutes(30), 0.51)]) - 0.02) < 1e-9
    # Three distinct values are enough however short the span.
    assert burn_rate_per_hour([(minutes(0), 0.5), (minutes(1), 0.51), (minutes(2), 0.52)]) > 0
    assert project([sample(minutes(0), 0.5)], "five_hour") == (None, None)


def test_a_flat_spell_since_the_last_change_slows_the_rate():
    rising = [sample(minutes(0), 0.50), sample(minutes(5), 0.55), sample(minutes(10), 0.60)]
    fast, _ = project(rising, "five_hour")
    rising[-1] = sample(minutes(10), 0.60, last_seen=minutes(50))
    slow, _ = project(rising, "five_hour")
    assert 0 < slow < fast


def test_a_falling_or_flat_window_never_runs_out():
    samples = [sample(minutes(0), 0.6), sample(minutes(20), 0.6, last_seen=minutes(40))]
    assert project(samples, "five_hour") == (0.0, None)


def test_samples_of_an_earlier_period_are_left_out():
    old_reset = T0 - datetime.timedelta(minutes=1)
    samples = [sample(minutes(-50), 0.90, reset=old_reset), sample(minutes(-40), 0.95, reset=old_reset),
               sample(minutes(0), 0.01), sample(minutes(30), 0.02)]
    assert [u for _, u in window_points(samples, "five_hour")] == [0.01, 0.02]


def test_samples_beyond_the_lookback_are_left_out():
    samples = [sample(minutes(0), 0.1), sample(minutes(90), 0.2), sample(minutes(120), 0.3)]
    assert [u for _, u in window_points(samples, "five_hour")] == [0.2, 0.3]


def test_a_full_window_ran_out_when_it_was_first_seen_full():
    samples = [sample(minutes(0), 0.9), sample(minutes(10), 1.0, last_seen=minutes(20))]
    assert project(samples, "five_hour")[1] == minutes(10)
    assert exhaustion_at(1.2, None, minutes(3), RESET) == minutes(3)


def test_headline_is_the_window_that_runs_out_first():
    projections = {"five_hour": (0.1, None), "seven_day": (0.05, minutes(30))}
    assert headline(projections, "five_hour") == ("seven_day", 0.05, minutes(30))
    projections["seven_day"] = (0.05, None)
    assert headline(projections, "seven_day") == ("seven_day", 0.05, None)
    assert headline(projections, "overage") == ("five_hour", 0.1, None)
