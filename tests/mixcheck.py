"Exact checks of one mixed batch, for every method: label weights, pixel provenance, untouched images (now in `fastmix.testing`)"
from fastmix.testing import check_weights, check_provenance, check_untouched_rows
