import pytest

from operators.quantity import cpu_cores, format_cpu, format_memory, memory_bytes


@pytest.mark.parametrize("value,cores", [("500m", 0.5), ("2", 2.0), (1, 1.0), ("0.25", 0.25), ("1500m", 1.5)])
def test_cpu(value, cores):
    assert cpu_cores(value) == cores


@pytest.mark.parametrize("value,n", [("64Mi", 64 * 2**20), ("1Gi", 2**30), ("1G", 10**9), ("128974848", 128974848),
                                     ("129e6", 129 * 10**6), ("1k", 1000)])
def test_memory(value, n):
    assert memory_bytes(value) == n


def test_invalid():
    with pytest.raises(ValueError):
        memory_bytes("12 apples")


def test_format():
    assert format_cpu(0.5) == "500m" and format_cpu(2) == "2"
    assert format_memory(64 * 2**20) == "64Mi" and format_memory(1000) == "1000"
