/* Any other driver library: one symbol naming it (FAKE_NAME). */
const char *berth_fake_lib(void)
{
	return FAKE_NAME;
}
