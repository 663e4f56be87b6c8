# Read by ctest after the discovered tests are defined: tests that compare speeds measured on
# this machine run alone, never beside other tests competing for the same cores. (ctest passes
# over names it does not know, e.g. in a kernels-only build.)
set_tests_properties(NetnsPlan.FastPairsOnASlowLinkBecomeTensorGroupsInAPipelineAndDecodeFastest
                     PROPERTIES RUN_SERIAL TRUE)
