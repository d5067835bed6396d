# A STAND-IN for the packages feed's python3-package.mk (tests only): the
# site-packages path; Py3Package (byte-compiling, the -src split) is a no-op.
PYTHON3_PKG_DIR:=/usr/lib/python3.11/site-packages
Py3Package =
