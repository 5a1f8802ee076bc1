import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # what the theory stage does by default: small tensors are fastest on one thread, even on a busy machine
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
