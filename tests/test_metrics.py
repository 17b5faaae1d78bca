import math

import pytest

from agentmill.eval.metrics import (accuracy, exact_match, macro_f1, mean, normalize_answer, perplexity,
                                    token_f1)


def test_accuracy():
    assert accuracy(["a", "b", "b", "c"], ["a", "b", "c", "c"]) == 0.75
    assert accuracy([], []) == 0.0
    with pytest.raises(ValueError):
        accuracy(["a"], ["a", "b"])


def test_macro_f1_small_confusion():
    golds = ["cat", "cat", "cat", "dog", "dog", "bird"]
    preds = ["cat", "cat", "dog", "dog", "cat", "cat"]
    # cat: tp=2 fp=2 fn=1 -> 4/7 ; dog: tp=1 fp=1 fn=1 -> 1/2 ; bird: tp=0 fn=1 -> 0
    expected = (4 / 7 + 1 / 2 + 0) / 3
    assert macro_f1(preds, golds) == pytest.approx(expected)
    assert macro_f1(preds, golds) == pytest.approx(0.357142857)


def test_macro_f1_label_set():
    golds = ["a", "a", "b"]
    preds = ["a", "a", "b"]
    assert macro_f1(preds, golds) == 1.0
    # a label that is neither gold nor predicted scores 0 and still counts in the average
    assert macro_f1(preds, golds, labels=["a", "b", "c"]) == pytest.approx(2 / 3)
    # a prediction outside the label set is only a miss of its gold class
    assert macro_f1(["zzz", "a", "b"], golds, labels=["a", "b"]) == pytest.approx((2 / 3 + 1) / 2)
    assert macro_f1([], []) == 0.0


def test_normalize_answer():
    assert normalize_answer("The  Answer, is: A cat!") == "answer is cat"
    assert normalize_answer("$1,234.56.") == "$1,234.56"
    assert normalize_answer("It rose 3.5% (to $12).") == "it rose 3.5% to $12"
    assert normalize_answer("a loss of -2.5, then 7") == "loss of -2.5 then 7"
    assert normalize_answer("don't") == "dont"
    assert normalize_answer("“Quoted” — text") == "quoted text"


def test_exact_match_keeps_numbers():
    assert exact_match("$1,234.56.", "$1,234.56") == 1.0
    assert exact_match("The total is $1,234.56", "total is $1,234.56.") == 1.0
    assert exact_match("$1,234.56", "$1234.56") == 0.0
    assert exact_match("$1,234.56", "$1,234.57") == 0.0


def test_token_f1():
    # pred tokens {cat, sat}, gold {cat, ran}: precision 1/2, recall 1/2 -> F1 0.5
    assert token_f1("the cat sat", "a cat ran") == pytest.approx(0.5)
    # precision 1, recall 1/3 -> 0.5
    assert token_f1("paris", "paris france europe") == pytest.approx(0.5)
    assert token_f1("Paris.", "paris") == 1.0
    assert token_f1("london", "paris") == 0.0
    assert token_f1("", "") == 1.0
    assert token_f1("the", "paris") == 0.0


def test_perplexity():
    assert perplexity(0.0, 10) == 1.0
    assert perplexity(10 * math.log(20.0), 10) == pytest.approx(20.0)
    assert perplexity(2.0 * 4, 4) == pytest.approx(math.e ** 2)
    assert perplexity(1e6, 1) == float("inf")
    with pytest.raises(ValueError):
        perplexity(1.0, 0)


def test_mean():
    assert mean([1, 2, 3, 4]) == 2.5
    assert mean(x for x in [0.5]) == 0.5
    assert mean([]) == 0.0
