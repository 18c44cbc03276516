#include "dtrain/core.h"
#include "dtrain/dist.h"
int main(int argc, char **argv)
{
    dt_dist_init(&argc, &argv);
    dt_log("dtrain %s\n", DT_VERSION);
    dt_dist_finalize();
    return 0;
}
