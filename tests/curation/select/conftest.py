import faiss
import pytest


@pytest.fixture(autouse=True)
def one_faiss_thread():
    """These problems are tiny: with 2 OpenMP threads and other processes holding the cores, faiss's thread barriers
    made a 0.05 s clustering take 1-4 s. Results are the same with 1 and 2 threads."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)
