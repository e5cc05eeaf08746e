"""Example user transforms: `"transform": "example_transforms:initials"` in a contract.

Modules in this folder ship beside your contracts: local runs put the contract's folder on the
import path, and `sam build` packages this folder as the TransformsLayer, so the same
`module:function` imports on Lambda.
"""

import pyarrow as pa
import pyarrow.compute as pc


def initials(page: pa.Table) -> pa.Table:
    """Add an `initials` column from `full_name` (a page in, a page out: whole columns)."""
    names = page.column("full_name")
    return page.append_column("initials", pc.utf8_upper(pc.utf8_slice_codeunits(names, 0, 2)))
