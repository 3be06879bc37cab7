"""What two or more of the stager's processes import (never anything from ``services``)."""
