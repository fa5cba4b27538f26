import os
import torch
# The test suite never reaches for the internet: a missing dataset is reported at once.
os.environ.setdefault('UPGD_NB_OFFLINE', '1')
# The notebooks run in this process. Their batch-size-1 work is fastest on one thread, and two busy-waiting
# OpenMP threads on a loaded 2-core machine slow every elementwise op many times over.
torch.set_num_threads(1)
# Without a GPU the Triton kernels run in Triton's interpreter, whose library functions must be built for it before
# anything (torch.compile, for one) first imports triton in this process.
if not torch.cuda.is_available(): os.environ.setdefault('TRITON_INTERPRET', '1')
