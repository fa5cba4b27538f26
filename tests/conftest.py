import os
# The test suite never reaches for the internet: a missing dataset is reported at once.
os.environ.setdefault('UPGD_NB_OFFLINE', '1')
