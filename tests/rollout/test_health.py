from cipo.rollout.health import sample_warnings


def test_no_warning_for_a_healthy_step():
    assert sample_warnings({"verify/status_no_answer": 3.0, "rollout/num_empty": 0.0}, 16, step=4) == {}


def test_empty_and_unanswered_samples_say_what_to_change():
    found = sample_warnings(
        {"rollout/num_empty": 2.0, "verify/status_no_answer": 12.0, "rollout/frac_truncated": 0.75}, 16, 4
    )
    assert "RL step 4: 2 completion(s) are empty" in found["empty"]
    assert "12 of 16 samples have no final answer" in found["no_answer"]
    assert "raise rollout.max_new_tokens" in found["no_answer"]
    found = sample_warnings({"verify/status_no_answer": 16.0, "rollout/frac_truncated": 0.0}, 16, 0)
    assert "verifier's answer format" in found["no_answer"]
