/* noop.c: exits 0 at once.  Static musl: its start-up executes no cpuid,
 * unlike glibc's (which traps to the hypervisor on a VM), so an exec round
 * trip of it is capsa's own cost (bench/sessions.py). */
int main(void)
{
	return 0;
}
