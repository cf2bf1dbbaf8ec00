/* pprof.c — placeholder until the codec lands. */
#include "pprof.h"
