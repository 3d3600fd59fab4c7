/* placeholder */
#include "core/error.h"
